"""The S3 door: SigV4, the S3 REST API over aiohttp, mapped onto the vfs."""
