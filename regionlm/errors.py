"""Errors a user can cause. The CLI prints `str(err)` on one line and exits with code 2 (no traceback)."""


class RegionLMError(Exception):
    """Base class: a problem with the user's input (file, region, argument, config), not a bug."""


class VideoError(RegionLMError):
    """A video or image that cannot be read, is empty or truncated, or a frame index past the end."""


class RegionError(RegionLMError):
    """A region prompt or mask that cannot be parsed or does not fit the frame."""


class DataFormatError(RegionLMError):
    """A record in a dataset file that breaks its format. Names the file, the record and the field."""

    def __init__(self, file, record, field, reason):
        self.file, self.record, self.field, self.reason = str(file), record, field, reason
        where = f"{self.file}: record {record!r}" if record is not None else self.file
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")
