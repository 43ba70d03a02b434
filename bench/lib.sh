# Shared by the bench scripts (sourced).
# settle URL: what earlier steps left dirty is written out before a clock starts — PostgreSQL's
# buffers by CHECKPOINT (when URL is a postgres:// one), then the OS's by sync. Without it one
# run's ~1 GB of WAL or dirty pages was still being written during the next.
settle() {
  case $1 in postgres*) psql -q "$1" -c CHECKPOINT >/dev/null ;; esac
  sync
}
