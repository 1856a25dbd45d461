"""Trainers: losses, optimisation and model selection. Datasets and networks come from elsewhere."""
