"""The hostile-input suite: models, data files and output folders from anyone."""
