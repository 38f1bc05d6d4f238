"""The session: GUI-agnostic state (model, data, recipe, experiments), project files and autosave."""
