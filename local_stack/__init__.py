"""A local stand-in for the AWS side of the service, without Docker.

moto in server mode plays Kinesis, S3 and SQS on 127.0.0.1; ``event_source_mapping`` does
what Lambda's Kinesis event source mapping does in AWS; ``run`` drives ``make run``.
"""
