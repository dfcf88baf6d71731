"""Small helpers every layer may use: argument checks, atomic writes, torch.distributed helpers, grouping."""

__all__ = []
