"""Data: readers, splits, augmentation, preprocessing, the data module and the downloader."""
