SELECT t.district, t.hour, t.mean_speed_kmh, a.mean_pm25
FROM (SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour, avg(avg_speed_kmh) AS mean_speed_kmh
      FROM traffic_flow GROUP BY ALL) AS t
JOIN (SELECT district, time_bucket(INTERVAL 1 HOUR, measured_at) AS hour, avg(pm25) AS mean_pm25
      FROM air_quality GROUP BY ALL) AS a USING (district, hour)
