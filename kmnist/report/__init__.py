"""Reports: training curves, evaluation plots and tables, batch previews, sweep leaderboards.

Pure functions over arrays and files; nothing here imports Lightning's training machinery."""
