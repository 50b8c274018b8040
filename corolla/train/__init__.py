from corolla.train.trainer import train

__all__ = ['train']
