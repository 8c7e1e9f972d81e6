#!/usr/bin/env bash
# The production Kafka broker of docker-compose.yml: one KRaft node (broker + controller) with
# SASL/SCRAM-SHA-512 for clients and ACLs enforced by the StandardAuthorizer.
#
# Why a script rather than the image's KAFKA_* variables: SCRAM credentials live in the KRaft
# metadata log, so the admin user must be written when the storage is formatted
# (kafka-storage format --add-scram), before the broker first starts; the image's own start-up
# cannot do that. The service users (ingest, scorer, actioner) and the ACLs are set afterwards
# by deploy/kafka/secure-setup.sh, with the admin's credentials.
#
# Listeners:
#   SASL_PLAINTEXT :9092  clients and the broker itself (SCRAM-SHA-512; the broker logs in as
#                         admin). Put TLS in front of it (SASL_SSL) when the network is shared.
#   CONTROLLER     :9093  the KRaft quorum, SASL/PLAIN with a single static user (admin): SCRAM
#                         cannot authenticate the controller, whose metadata holds the SCRAM
#                         credentials. Bound to localhost: nothing outside the container reaches it.
#
# Environment: KAFKA_ADMIN_PASSWORD (required), CLUSTER_ID (required), KAFKA_ADVERTISED_HOST
# (default kafka), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_LISTEN_HOST (all
# interfaces), KAFKA_DATA_DIR, KAFKA_HOME, KAFKA_CONFIG_DIR, KAFKA_NUM_PARTITIONS.
set -euo pipefail

: "${KAFKA_ADMIN_PASSWORD:?KAFKA_ADMIN_PASSWORD is required}"
: "${CLUSTER_ID:?CLUSTER_ID is required}"
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_LISTEN_HOST=${KAFKA_LISTEN_HOST:-}
KAFKA_ADVERTISED_HOST=${KAFKA_ADVERTISED_HOST:-kafka}
KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-/var/lib/kafka/data}
KAFKA_CONFIG_DIR=${KAFKA_CONFIG_DIR:-/tmp/warden-kafka}
KAFKA_NUM_PARTITIONS=${KAFKA_NUM_PARTITIONS:-6}

# A password goes into a JAAS line between double quotes: refuse what would break out of them.
case "$KAFKA_ADMIN_PASSWORD" in
  *'"'* | *'\'* | *';'*) echo "KAFKA_ADMIN_PASSWORD must not contain \", \\ or ;" >&2; exit 2 ;;
esac

umask 077
mkdir -p "$KAFKA_CONFIG_DIR" "$KAFKA_DATA_DIR"
config="$KAFKA_CONFIG_DIR/server.properties"
scram_login="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$KAFKA_ADMIN_PASSWORD\";"
plain_login="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$KAFKA_ADMIN_PASSWORD\" user_admin=\"$KAFKA_ADMIN_PASSWORD\";"

cat > "$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:$KAFKA_CONTROLLER_PORT
listeners=SASL_PLAINTEXT://$KAFKA_LISTEN_HOST:$KAFKA_PORT,CONTROLLER://localhost:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$KAFKA_ADVERTISED_HOST:$KAFKA_PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT

sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram_login
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$plain_login

# Nothing is allowed unless an ACL allows it; admin (the broker itself, topic creation, ACLs)
# is the only super user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin

log.dirs=$KAFKA_DATA_DIR
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Only principals with CREATE may auto-create: the scorer, for faust's own topics.
auto.create.topics.enable=true
num.partitions=$KAFKA_NUM_PARTITIONS
PROPERTIES

# For the health check and the set-up job: the admin's client properties.
cat > "$KAFKA_CONFIG_DIR/admin.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$scram_login
PROPERTIES

if [ ! -e "$KAFKA_DATA_DIR/meta.properties" ]; then
  "$KAFKA_HOME/bin/kafka-storage.sh" format --config "$config" --cluster-id "$CLUSTER_ID" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"
fi
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$config"
