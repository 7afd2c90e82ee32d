"""The job service: a FastAPI app in front of Celery workers that run the pipeline.

Importing this package loads neither FastAPI nor the pipeline; `facecast.service.app` has the app.
"""
