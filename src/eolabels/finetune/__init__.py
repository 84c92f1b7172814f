"""Downstream fine-tuning of pretrained encoders and its analyses (CromSS spec §7, §8, §10)."""
