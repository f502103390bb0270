"""Train step: tf.data input, U-Net, Keras training, SavedModel export."""
