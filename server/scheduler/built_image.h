#pragma once
// `image: ${{ jobs.NAME.image }}` at dispatch (issue 9, docs/images.md): the job runs the image
// that job NAME of the same pipeline pushed, pinned by digest.

#include "absl/status/status.h"
#include "assay/v1/agent.pb.h"
#include "common/crypto/sealed.h"
#include "server/store/job_images.h"
#include "server/store/jobs.h"
#include "server/store/secrets.h"

namespace assay {

// When a->image().name() is `${{ jobs.NAME.image }}`: replaces it with "<repository>@<digest>"
// of NAME's last pushed primary image and, for a trusted pipeline, sets
// a->image_pull_credential from NAME's registry_secret (opened as AttachSecrets opens the
// secrets a job lists, in NAME's environment). Any other image: nothing. Errors:
//   kFailedPrecondition "image: ${{ jobs.NAME.image }}: job NAME pushed no image" (also with a
//     null `images`), or a registry_secret that cannot be found: the job must fail;
//   kDataLoss (a secret that cannot be opened): the job must fail;
//   anything else (the database): the job goes back to the queue.
absl::Status ResolveBuiltImage(const store::ClaimedJob& job, store::JobImageStore* images,
                               store::SecretStore* secrets, const KeyRing& keys, v1::Assignment* a);

}  // namespace assay
