"""The `segpipe` command line: its commands and how parameters enter."""
