"""The `motionpipe` subcommands over the model library: each module adds its parser and runs its command; the
library they call (``training/``) takes paths and settings as arguments and parses no command line."""
