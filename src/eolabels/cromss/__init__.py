"""CromSS (Liu, Albrecht, Wang, Zhu): cross-modal sample selection for pretraining Sentinel-1/2
U-Net encoders on noisy Dynamic World labels.  Formulas follow the spec ``specs/cromss.md``,
itself taken from the authors' code (zhu-xlab/CromSS @ a5aab81)."""
