"""Rewards learned from preferences: preference data, reward models (linear, ensemble, CNN-LoRA,
text-LoRA), the learned reward a policy trains on, query selection, scripted teachers, metrics."""
