# The Lambda container image: the AWS Python base image, the runtime dependencies installed
# from uv.lock with their hashes checked, and the handler's modules at the top of the task root.
#
#   docker build -t stream-model-duration:v2 .
#   docker run -it --rm -p 8080:8080 -e PREDICTIONS_STREAM_NAME=ride_predictions \
#       -e RUN_ID=<run id> -e MODEL_BUCKET=<bucket> -e TEST_RUN=True \
#       -e AWS_DEFAULT_REGION=eu-west-1 stream-model-duration:v2
#
# Outside Lambda the base image serves the handler through the Runtime Interface Emulator at
# POST http://localhost:8080/2015-03-31/functions/function/invocations.

# uv exports and installs the locked dependencies in a build stage, so that neither uv nor
# the requirements file reaches the final image.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM public.ecr.aws/lambda/python:3.12 AS dependencies
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /build
COPY pyproject.toml uv.lock ./
# MODEL_LOADERS=mlflow adds MLflow's loaders (the project's "mlflow" extra), which runs:/
# and models:/ locations and non-pickled flavours need. Without it the image is about
# 170 MiB smaller and loads pickled scikit-learn models from a folder or S3.
ARG MODEL_LOADERS=""
# --no-dev leaves out the dev group (tests, linters, MLflow server), and every wheel must
# match its hash in uv.lock. The export pins the whole dependency tree, so --no-deps
# installs exactly the locked set. Bytecode is compiled now, not at each cold start.
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt \
        ${MODEL_LOADERS:+--extra "${MODEL_LOADERS}"} \
        --output-file requirements.txt \
    && uv pip install --no-cache --require-hashes --no-deps --compile-bytecode \
        --python /var/lang/bin/python3.12 --target /asset --requirement requirements.txt

FROM public.ecr.aws/lambda/python:3.12
COPY --from=dependencies /asset ${LAMBDA_TASK_ROOT}
# The runtime modules: everything lambda_function imports from this repository, and nothing
# else. tests/test_container_contract.py reads this instruction to assemble the same task root
# and run the handler from it, so a module missing here fails that test.
COPY lambda_function.py model.py settings.py model_loading.py ride_events.py \
     prediction_delivery.py dead_letter_queue.py observability.py chunking.py \
     ${LAMBDA_TASK_ROOT}/

CMD ["lambda_function.lambda_handler"]
