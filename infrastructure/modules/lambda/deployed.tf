# scripts/deploy.sh changes the image and the model of the function with every
# deployment. Terraform reads both back from the deployed function, so an apply
# keeps what the last deployment set unless a variable sets it explicitly.
data "aws_lambda_functions" "all" {}

data "aws_lambda_function" "deployed" {
  count         = contains(data.aws_lambda_functions.all.function_names, var.function_name) ? 1 : 0
  function_name = var.function_name
}

locals {
  deployed_image_uri = try(data.aws_lambda_function.deployed[0].image_uri, "")
  # deploy.sh always deploys by digest. An image deployed by tag (by hand) yields
  # null here, and the function's precondition then asks for lambda_image_digest.
  deployed_image_digest = try(regex("@(sha256:[0-9a-f]{64})$", local.deployed_image_uri)[0], null)
  deployed_variables    = try(data.aws_lambda_function.deployed[0].environment[0].variables, {})

  image_digest = var.image_digest != null ? var.image_digest : local.deployed_image_digest

  # An explicit variable wins, and an empty one keeps the deployed value.
  model_run_id   = var.model_run_id != "" ? var.model_run_id : lookup(local.deployed_variables, "RUN_ID", "")
  model_location = var.model_location != "" ? var.model_location : lookup(local.deployed_variables, "MODEL_LOCATION", "")
}
