# The environment canon-listener reads: one entry per CANON_* variable (listener/src/config/table.rs,
# ENV_VARS). nix/module.nix makes every plain entry an option under
# services.canon-listener.settings and exports it as that variable; a `secret` entry is never an
# option (it would land in the world-readable Nix store) and is read from environmentFile instead.
# listener/tests/nix_module.rs checks this table against ENV_VARS both ways.
#
# Fields: env (the variable), type (str | path | int | listOfStr), default (omit: optional, unset
# unless given), required (no default; evaluation fails without it), secret, description.
{
  bind = {
    env = "CANON_BIND";
    type = "str";
    default = "127.0.0.1:8088";
    description = "Address and port the HTTP server binds (webhooks, status page, /metrics). Put a TLS proxy in front.";
  };
  stateDir = {
    env = "CANON_STATE_DIR";
    type = "str";
    default = "/var/lib/canon";
    description = "State directory: canonical records, history, locks and the journal listener.sqlite3. The default is the unit's StateDirectory; it is shared with services.canon-sweep.";
  };
  enrollment = {
    env = "CANON_ENROLLMENT";
    type = "path";
    required = true;
    description = "The enrollment file (which recipes canon keeps, their upstream and mirror).";
  };
  webhookSecrets = {
    env = "CANON_WEBHOOK_SECRETS";
    secret = true;
    description = "Webhook secrets, comma-separated (two while rotating), at least 16 characters each.";
  };
  forgeUrl = {
    env = "CANON_FORGE_URL";
    type = "str";
    description = "Base URL of the upstream forge (tag resolution, register-hooks), e.g. https://git.coopcloud.tech.";
  };
  forgeToken = {
    env = "CANON_FORGE_TOKEN";
    secret = true;
    description = "API token for the upstream forge.";
  };
  mirrorUrl = {
    env = "CANON_MIRROR_URL";
    type = "str";
    description = "Base URL of the mirror forge.";
  };
  mirrorToken = {
    env = "CANON_MIRROR_TOKEN";
    secret = true;
    description = "Token used to push to the mirrors over HTTPS.";
  };
  sshKey = {
    env = "CANON_SSH_KEY";
    type = "str";
    description = "Path of an SSH private key for ssh:// or scp-like remotes (a path outside the Nix store, e.g. under /run/secrets).";
  };
  stateRepo = {
    env = "CANON_STATE_REPO";
    type = "str";
    description = "A git state repository holding the canonical records for every runner host (read with the mirror token or SSH key); unset: the state directory holds them.";
  };
  knownHosts = {
    env = "CANON_KNOWN_HOSTS";
    type = "str";
    description = "Path of an OpenSSH known_hosts file that alone decides which SSH host keys are trusted (unset: ~/.ssh/known_hosts of the service user).";
  };
  droneServer = {
    env = "CANON_DRONE_SERVER";
    type = "str";
    required = true;
    description = "URL of the Drone server, e.g. https://drone.example.org.";
  };
  droneToken = {
    env = "CANON_DRONE_TOKEN";
    secret = true;
    description = "Drone API token of a user with write access to droneRepo.";
  };
  droneRepo = {
    env = "CANON_DRONE_REPO";
    type = "str";
    required = true;
    description = "The Drone repository (owner/name) whose `canonical` pipeline runs the cold CI.";
  };
  droneBranch = {
    env = "CANON_DRONE_BRANCH";
    type = "str";
    description = "Branch the builds are started on (listener default: main).";
  };
  workers = {
    env = "CANON_WORKERS";
    type = "int";
    description = "Jobs run at once across recipes; one at a time per recipe (listener default: 2).";
  };
  maxAttempts = {
    env = "CANON_MAX_ATTEMPTS";
    type = "int";
    description = "Attempts before a failed job stays failed (listener default: 8).";
  };
  retryBase = {
    env = "CANON_RETRY_BASE";
    type = "str";
    description = "Delay after a job's first failure, doubled after each further one, e.g. 10s (listener default).";
  };
  retryMax = {
    env = "CANON_RETRY_MAX";
    type = "str";
    description = "Upper bound of a retry delay, e.g. 15m (listener default).";
  };
  attemptDeadline = {
    env = "CANON_ATTEMPT_DEADLINE";
    type = "str";
    description = "How long one job attempt (resolve, sync, trigger) may take in all, e.g. 15m (listener default); past it the attempt is retried and the recipe freed.";
  };
  retention = {
    env = "CANON_RETENTION";
    type = "str";
    description = "How long journaled deliveries are kept, e.g. 30days (listener default); older ones are pruned hourly unless their job is unfinished.";
  };
  publicUrl = {
    env = "CANON_PUBLIC_URL";
    type = "str";
    description = "Public URL of this listener, used by `canon-listener register-hooks` (<url>/hooks/gitea).";
  };
  maxConnections = {
    env = "CANON_MAX_CONNECTIONS";
    type = "int";
    description = "Connections served at once; past it a new connection is closed at once (listener default: 256, lowered to stay 64 below LimitNOFILE).";
  };
  headerTimeout = {
    env = "CANON_HEADER_TIMEOUT";
    type = "str";
    description = "How long a connection may take to send a request head, from when it opens or from its previous answer (also the keep-alive idle timeout), e.g. 10s (listener default, at most 60s).";
  };
  requestDeadline = {
    env = "CANON_REQUEST_DEADLINE";
    type = "str";
    description = "How long one request may take once its head is read, e.g. 30s (listener default); past it the answer is 408 and the connection closes.";
  };
  shutdownDeadline = {
    env = "CANON_SHUTDOWN_DEADLINE";
    type = "str";
    description = "How long a shutdown waits for requests in flight before it drops their connections, e.g. 10s (listener default).";
  };
  adminToken = {
    env = "CANON_ADMIN_TOKEN";
    secret = true;
    description = "Bearer token that /, /api/* and /metrics require (at least 16 characters); unset, they are open. /healthz, /readyz, /badge/* and /hooks/* never need it.";
  };
  log = {
    env = "CANON_LOG";
    type = "str";
    description = "Log filter, e.g. info or canon_listener=debug (listener default: info).";
  };
  droneConfigSecret = {
    env = "CANON_DRONE_CONFIG_SECRET";
    secret = true;
    description = "The Drone server's DRONE_YAML_SECRET (at least 16 characters): the listener then serves canon's pipelines at POST /drone/config (DRONE_YAML_ENDPOINT).";
  };
  pipelineImage = {
    env = "CANON_PIPELINE_IMAGE";
    type = "str";
    description = "The plugin image the pipelines served at /drone/config run (listener default: this release's canon-plugin tag).";
  };
  pipelineStateDir = {
    env = "CANON_PIPELINE_STATE_DIR";
    type = "str";
    description = "The runner host's state directory the served pipelines mount, e.g. /var/lib/canon (listener default).";
  };
  pipelineEnrollment = {
    env = "CANON_PIPELINE_ENROLLMENT";
    type = "str";
    description = "The runner host's enrollment file the served pipelines read, e.g. /etc/canon/enrollment.yml (listener default); its folder is mounted.";
  };
  pipelineSecretPrefix = {
    env = "CANON_PIPELINE_SECRET_PREFIX";
    type = "str";
    description = "Prefix of the Drone secret names the served pipelines read (upstream_token, mirror_token, ssh_key, drone_token, listener_token).";
  };
  pollInterval = {
    env = "CANON_POLL_INTERVAL";
    type = "str";
    description = "How often upstreams without a recent webhook are polled for new release tags over git, e.g. 10m (listener default); 0 turns polling off.";
  };
}
