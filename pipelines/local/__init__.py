"""Running the pipeline on this machine: kfp.local as processes, or in the images."""
