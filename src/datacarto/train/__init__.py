"""Training: the baseline run with recording, focused fine-tuning, losses and ensembles."""
