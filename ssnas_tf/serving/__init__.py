"""Export of the fine-tuned classifier for TF Serving."""
