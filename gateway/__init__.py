"""samebytes: one namespace served through S3, NFSv3 and FUSE."""
