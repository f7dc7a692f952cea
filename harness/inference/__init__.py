"""Using a trained run outside training: scoring unlabelled clips and exporting the model."""
