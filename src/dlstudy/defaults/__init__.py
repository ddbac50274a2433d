"""Each study's default config and its --quick overrides, every key with a comment on what it does."""
