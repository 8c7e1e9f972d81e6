#!/usr/bin/env bash
# One-shot set-up of the secured broker (docker-compose.yml `kafka-setup`): the SCRAM users of
# the services and their ACLs, from the admin's credentials. Idempotent: run it again after
# changing a password (that is how a password is rotated) or the ACLs below.
#
# Who may do what (docs/security.md has the table); nothing else is allowed:
#   ingest     writes chat.messages.v1, moderation.feedback.v1 (disputes) and the dead letters
#   scorer     reads chat.messages.v1, writes moderation.verdicts.v1, moderation.raids.v1 and
#              the dead letters, owns the topics and groups starting with <prefix>.scorer
#              (faust's own topics), and the groups starting with <prefix>.images (the image
#              stage, `warden images`, runs as the scorer)
#   actioner   reads moderation.verdicts.v1 and moderation.raids.v1, writes
#              moderation.actions.v1 and the dead letters
#   explainer  reads moderation.verdicts.v1 and moderation.feedback.v1, writes
#              moderation.explanations.v1 and the dead letters
#   review     reads moderation.feedback.v1 and moderation.explanations.v1, writes
#              moderation.feedback.v1 (reviews, bot disputes), moderation.actions.v1 (the
#              reversals of an overturn) and the dead letters
#   drift      reads moderation.verdicts.v1, writes moderation.drift.v1
# Each service's consumer groups start with <prefix>.<service> (core.clients.group_id).
#
# Environment: KAFKA_ADMIN_PASSWORD, KAFKA_INGEST_PASSWORD, KAFKA_SCORER_PASSWORD,
# KAFKA_ACTIONER_PASSWORD, KAFKA_EXPLAINER_PASSWORD, KAFKA_REVIEW_PASSWORD,
# KAFKA_DRIFT_PASSWORD (all required), KAFKA_BOOTSTRAP (default kafka:9092),
# WARDEN_GROUP_PREFIX (default warden), TOPIC_SUFFIX (default empty), KAFKA_HOME.
set -euo pipefail

: "${KAFKA_ADMIN_PASSWORD:?KAFKA_ADMIN_PASSWORD is required}"
: "${KAFKA_INGEST_PASSWORD:?KAFKA_INGEST_PASSWORD is required}"
: "${KAFKA_SCORER_PASSWORD:?KAFKA_SCORER_PASSWORD is required}"
: "${KAFKA_ACTIONER_PASSWORD:?KAFKA_ACTIONER_PASSWORD is required}"
: "${KAFKA_EXPLAINER_PASSWORD:?KAFKA_EXPLAINER_PASSWORD is required}"
: "${KAFKA_REVIEW_PASSWORD:?KAFKA_REVIEW_PASSWORD is required}"
: "${KAFKA_DRIFT_PASSWORD:?KAFKA_DRIFT_PASSWORD is required}"
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-kafka:9092}
prefix=${WARDEN_GROUP_PREFIX:-warden}
suffix=${TOPIC_SUFFIX:-}

messages="chat.messages.v1$suffix"
verdicts="moderation.verdicts.v1$suffix"
actions="moderation.actions.v1$suffix"
deadletters="moderation.deadletter.v1$suffix"
raids="moderation.raids.v1$suffix"
explanations="moderation.explanations.v1$suffix"
feedback="moderation.feedback.v1$suffix"
drift="moderation.drift.v1$suffix"

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for password in "$KAFKA_ADMIN_PASSWORD" "$KAFKA_INGEST_PASSWORD" "$KAFKA_SCORER_PASSWORD" \
    "$KAFKA_ACTIONER_PASSWORD" "$KAFKA_EXPLAINER_PASSWORD" "$KAFKA_REVIEW_PASSWORD" \
    "$KAFKA_DRIFT_PASSWORD"; do
  case "$password" in
    *'"'* | *'\'* | *';'* | *','* | *']'*)
      echo "Kafka passwords must not contain \" \\ ; , or ]" >&2; exit 2 ;;
  esac
done
cat > "$work/admin.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
PROPERTIES
admin=(--bootstrap-server "$KAFKA_BOOTSTRAP" --command-config "$work/admin.properties")

for attempt in $(seq 1 60); do
  if "$KAFKA_HOME/bin/kafka-broker-api-versions.sh" "${admin[@]}" >/dev/null 2>&1; then
    break
  fi
  [ "$attempt" -lt 60 ] || { echo "broker at $KAFKA_BOOTSTRAP did not answer" >&2; exit 1; }
  sleep 2
done

# kafka-configs takes a SCRAM password only on its command line (--add-config-file mangles the
# mechanism's name); this one-shot container runs nothing else that could read it.
set_password() {
  "$KAFKA_HOME/bin/kafka-configs.sh" "${admin[@]}" --alter --entity-type users \
    --entity-name "$1" --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}
set_password ingest "$KAFKA_INGEST_PASSWORD"
set_password scorer "$KAFKA_SCORER_PASSWORD"
set_password actioner "$KAFKA_ACTIONER_PASSWORD"
set_password explainer "$KAFKA_EXPLAINER_PASSWORD"
set_password review "$KAFKA_REVIEW_PASSWORD"
set_password drift "$KAFKA_DRIFT_PASSWORD"

acl() {
  "$KAFKA_HOME/bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal "User:$1" "${@:2}" >/dev/null
}
# One call a principal and set of operations: kafka-acls grants them on every --topic (or
# --group) given, and each call starts a JVM.
# Producers: WRITE (with it, Kafka 3 allows the idempotent producer's InitProducerId).
acl ingest --operation Write --operation Describe \
  --topic "$messages" --topic "$deadletters" --topic "$feedback"

acl scorer --operation Read --operation Describe --topic "$messages"
acl scorer --operation Write --operation Describe \
  --topic "$verdicts" --topic "$deadletters" --topic "$raids"
# The image stage (`warden images`) runs as the scorer, in its own group.
acl scorer --operation Read --group "$prefix.scorer" --group "$prefix.images" \
  --resource-pattern-type prefixed
# faust creates and uses topics named after its app id (<prefix>.scorer-__assignor-__leader...).
acl scorer --operation All --topic "$prefix.scorer" --resource-pattern-type prefixed

acl actioner --operation Read --operation Describe --topic "$verdicts" --topic "$raids"
acl actioner --operation Write --operation Describe --topic "$actions" --topic "$deadletters"
acl actioner --operation Read --group "$prefix.actioner" --resource-pattern-type prefixed

acl explainer --operation Read --operation Describe --topic "$verdicts" --topic "$feedback"
acl explainer --operation Write --operation Describe --topic "$explanations" --topic "$deadletters"
acl explainer --operation Read --group "$prefix.explainer" --resource-pattern-type prefixed

acl review --operation Read --operation Write --operation Describe --topic "$feedback"
acl review --operation Read --operation Describe --topic "$explanations"
acl review --operation Write --operation Describe --topic "$actions" --topic "$deadletters"
acl review --operation Read --group "$prefix.review" --resource-pattern-type prefixed

acl drift --operation Read --operation Describe --topic "$verdicts"
acl drift --operation Write --operation Describe --topic "$drift"
acl drift --operation Read --group "$prefix.drift" --resource-pattern-type prefixed

echo "SCRAM users ingest, scorer, actioner, explainer, review, drift and their ACLs are set"
