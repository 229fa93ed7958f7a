# The repository stands alone: nothing names the folder outside the checkout
# or cites a document that is not in it (tests/cli/self_contained.sh).
add_test(NAME test_repo_self_contained
         COMMAND ${CMAKE_SOURCE_DIR}/tests/cli/self_contained.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(test_repo_self_contained PROPERTIES LABELS unit TIMEOUT 60)
