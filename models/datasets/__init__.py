"""Datasets: files and formats in, an in-memory ``ImageSet`` out. No training logic here."""
