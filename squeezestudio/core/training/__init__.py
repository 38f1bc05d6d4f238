"""Training: the generic loop (hooks, distillation, cancel keeps the best) and compression-keeping fine-tuning."""
