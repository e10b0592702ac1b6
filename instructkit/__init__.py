"""instructkit: build instruction-tuning data for multimodal LLMs and fine-tune on it.

Importing the package is cheap: heavy libraries (torch, transformers, datasets, openai) load only in
the functions that use them.
"""

from .errors import InstructkitError
from .records import IMAGE_TOKEN, Message, Record

__version__ = "0.1.0"
__all__ = ["IMAGE_TOKEN", "InstructkitError", "Message", "Record", "__version__"]
