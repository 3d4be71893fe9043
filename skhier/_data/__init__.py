"""Input to arrays: group labels and codes, factor layouts and nesting, checks."""
