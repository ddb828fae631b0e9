"""Golden models: the numerics and every block's behaviour, pure NumPy."""
