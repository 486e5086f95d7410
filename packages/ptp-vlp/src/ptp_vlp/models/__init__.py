"""BLIP models on visioncore's ViT and transformers' BLIP text stack."""

from ptp_vlp.models.blip import BLIPCaption, BLIPConfig, BLIPPretrain, BLIPRetrieval

__all__ = ["BLIPCaption", "BLIPConfig", "BLIPPretrain", "BLIPRetrieval"]
