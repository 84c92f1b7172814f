"""Epitomic label super-resolution (Malkin, Ortiz, Jojic, ECCV 2020): spec epitome.md."""
