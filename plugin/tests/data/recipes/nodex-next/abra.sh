# abra recipe metadata for the nodex-next Co-op Cloud recipe.
#
# Examples for later:
#   export ENTRYPOINT_VERSION=v1
#   export SESSION_SECRET_VERSION=v1
