-- "Top pages over the last 30 minutes": the classic Kafka Streams example,
-- as a PipelineDB sliding window. Feed page_views from Kafka with
--   SELECT pipeline_kafka.consume_begin('page_views', 'page_views', format := 'json');
-- or with INSERT and COPY. The window slides in 90-second steps (5%).
CREATE STREAM page_views (page text, user_id bigint);

CREATE VIEW page_views_30m WITH (sw = '30 minutes') AS
    SELECT page, count(*) AS views, count(DISTINCT user_id) AS visitors
    FROM page_views
    GROUP BY page;

-- The ranking, read from the view at any moment (a cheap read: one row per
-- page, merged over the live steps):
SELECT page, views, visitors FROM page_views_30m ORDER BY views DESC, page LIMIT 3;
