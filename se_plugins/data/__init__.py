"""Data preparation for the demo and tests: real images in the layouts the frameworks read."""
from .digits import prepare_digits, write_cifar10_layout, write_image_folder

__all__ = ['prepare_digits', 'write_cifar10_layout', 'write_image_folder']
