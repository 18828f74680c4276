"""Image and text classifiers fine-tuned with LoRA (or frozen, or fully)."""
