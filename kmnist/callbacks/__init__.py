"""Lightning callbacks, one per file; each is named by a conf/callbacks/*.yaml."""
