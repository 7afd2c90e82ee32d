"""facecast: one portrait photo plus speech -> a lip-synced talking-head MP4."""

__version__ = "0.1.0"
