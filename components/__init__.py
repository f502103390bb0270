"""segpipe steps: preprocess, train, evaluate, publish."""
