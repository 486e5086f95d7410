"""Image folders (ImageNet, FFHQ, LSUN exports, synthetic digits) and token caches."""

from seq_gan.data.folders import ImageFolderDataset, load_image
from seq_gan.data.tokens import TokenCache, load_tokens, save_tokens

__all__ = ["ImageFolderDataset", "TokenCache", "load_image", "load_tokens", "save_tokens"]
