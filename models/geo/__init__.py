"""Raster IO and geometry, torch-free: reading tiles and scenes (the only rasterio user), the patch grid, footprints and CRS transforms, band matching."""
