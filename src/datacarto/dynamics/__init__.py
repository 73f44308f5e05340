"""The run folder: storing, caching, subsetting, comparing and converting training dynamics."""
