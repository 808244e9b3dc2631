"""Base images and per-repository environment images: detection, resolution, wheels, builds."""
