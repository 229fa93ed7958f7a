# scripts/deploy (Dockerfile, Kubernetes manifest): YAML, the Kubernetes API
# schemas, hadolint, and the structural checks that tie the files to `hsd
# serve` / `hsd status` (their flags are checked against this build's
# --help). Nothing is built into an image or applied to a cluster here.
add_test(NAME test_deploy_lint COMMAND ${CMAKE_SOURCE_DIR}/scripts/deploy/lint.sh
         $<TARGET_FILE:hsd>)
set_tests_properties(test_deploy_lint PROPERTIES LABELS unit TIMEOUT 120)
