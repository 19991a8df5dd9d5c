/**
 * MQTT: the embedded broker used when no `MQTT_URL` is configured.
 *
 * @module
 */
export {
  type EmbeddedBroker,
  type EmbeddedBrokerOptions,
  startEmbeddedBroker,
} from "./embedded_broker.ts";
