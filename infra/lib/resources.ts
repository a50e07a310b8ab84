// The resource names and their environment variables, from the one file the Rust code reads
// too (config/resources.json). Change a name there, nowhere else.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Named {
  name: string;
  env: string;
}

interface ResourcesFile {
  kinesis: { chat_messages: Named; stream_lifecycle: Named };
  dynamodb: {
    detector_state: Named & { partition_key: string };
    channel_settings: Named & { partition_key: string };
    highlights: Named & { partition_key: string; sort_key: string; ttl_attribute: string };
  };
  sqs: { detector_dlq: Named; lifecycle_dlq: Named; clipper_dlq: Named; announcer_dlq: Named };
  secrets: { twitch_app: Named; twitch_user_token: Named };
  /** One PostgreSQL login user per component, its password in its own secret (`name`). */
  database_users: Record<DatabaseComponent, Named & { user: string; role: string; url_env: string }>;
}

export type DatabaseComponent = 'api' | 'ingester' | 'clipper' | 'lifecycle';

export const resources: ResourcesFile = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', '..', 'config', 'resources.json'), 'utf8'),
);
