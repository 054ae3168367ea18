"""The window's panels: each formats what the window hands it and emits what the operator asks."""
