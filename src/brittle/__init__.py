"""brittle: find where a computer-vision model breaks before production does.

>>> import brittle
>>> isinstance(brittle.__version__, str)
True
"""

from brittle._version import __version__

__all__ = ["__version__"]
