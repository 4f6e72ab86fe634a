// The AWS settings a user's tools already have, found where the AWS CLI and SDKs look:
//   credentials  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN); else the profile
//                (AWS_PROFILE, AWS_DEFAULT_PROFILE, "default") in AWS_SHARED_CREDENTIALS_FILE
//                (~/.aws/credentials), then in AWS_CONFIG_FILE (~/.aws/config, "[profile NAME]");
//                else the container endpoint SageMaker and ECS give jobs
//                (AWS_CONTAINER_CREDENTIALS_FULL_URI, or http://169.254.170.2 +
//                AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN)
//   region       AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else us-east-1
//   endpoint     AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL (path-style addressing: MinIO, moto,
//                LocalStack), else https://s3.<region>.amazonaws.com (virtual-hosted buckets)
#pragma once

#include <string>

#include "aws/sigv4.h"

namespace tuneserve::aws {

struct AwsSettings {
  SigV4Credentials credentials;
  std::string credentials_source;  // "environment", "~/.aws/credentials [prod]", ... (for errors)
  std::string region = "us-east-1";
  std::string endpoint;            // "" = AWS itself

  // Error when no credentials are found, saying where it looked.
  static AwsSettings from_env();
};

}  // namespace tuneserve::aws
