"""Data: the PTP corpus TSV, tagging, datasets and the ShapesGrid generator."""
